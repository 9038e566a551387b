"""A stock Jina Executor for flotilla's interop tests: tags each doc with the replica's name
(from REPLICA_NAME) and takes a little time, like real work."""
import os
import time

from jina import Executor, requests


class TagExec(Executor):
    @requests
    def tag(self, docs, **kwargs):
        time.sleep(0.01)
        for d in docs:
            d.tags['served_by'] = os.environ.get('REPLICA_NAME', 'python')

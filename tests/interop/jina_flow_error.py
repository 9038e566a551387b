"""A stock Jina Flow whose first Executor is a failing `flotilla executor` (driven by
tests/interop.rs).

Usage: jina_flow_error.py EXECUTOR_PORT MARKS_FILE

Starts `Flow().add(external flotilla ExactNNIndexer of dim 4).add(Marker)`: Marker is a stock
Python Executor after it that appends the ids of the docs it sees to MARKS_FILE. A good /index
reaches Marker; a /index with a 3-d embedding fails in flotilla, and Jina's gateway, reading the
`is-error` trailer, must not send it on to Marker. Prints `INTEROP <json>` lines.
"""

import json
import os
import socket
import sys
import traceback

os.environ.setdefault('JINA_LOG_LEVEL', 'ERROR')

import numpy as np  # noqa: E402
from docarray import DocList  # noqa: E402
from docarray.documents import TextDoc  # noqa: E402
from jina import Client, Executor, Flow, requests  # noqa: E402

HOST = '127.0.0.1'


class Marker(Executor):
    def __init__(self, path: str = '', **kwargs):
        super().__init__(**kwargs)
        self.path = path

    @requests
    def mark(self, docs, **kwargs):
        with open(self.path, 'a') as f:
            for d in docs:
                f.write(d.id + '\n')


def emit(scenario, **fields):
    print('INTEROP ' + json.dumps({'scenario': scenario, **fields}, default=str), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def marks(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def docs(prefix, dim):
    return DocList[TextDoc](
        [TextDoc(id=f'{prefix}{i}', embedding=np.ones(dim, dtype=np.float32)) for i in range(2)]
    )


def main():
    exec_port, path = int(sys.argv[1]), sys.argv[2]
    gateway_port = free_port()
    flow = (
        Flow(port=gateway_port, protocol='grpc', timeout_ready=120_000)
        .add(name='flotilla', host=HOST, port=exec_port, external=True)
        .add(name='marker', uses=Marker, uses_with={'path': path})
    )
    with flow:
        c = Client(host=HOST, port=gateway_port, protocol='grpc')
        try:
            out = c.post('/index', docs('good', 4), return_type=DocList[TextDoc])
            emit('good', ids=[d.id for d in out], marks=marks(path))
        except Exception:
            emit('good', error=traceback.format_exc())
        try:
            c.post('/index', docs('bad', 3), return_type=DocList[TextDoc])
            emit('bad', raised=None, marks=marks(path))
        except Exception as e:
            emit(
                'bad',
                raised=type(e).__name__,
                message=str(e),
                marks=marks(path),
            )
        try:
            out = c.post('/index', docs('after', 4), return_type=DocList[TextDoc])
            emit('after', ids=[d.id for d in out], marks=marks(path))
        except Exception:
            emit('after', error=traceback.format_exc())


if __name__ == '__main__':
    main()

"""A stock Jina Flow using a `flotilla executor` as an external Executor (driven by
tests/interop.rs).

Usage: jina_flow.py EXECUTOR_PORT

Starts `Flow(port=<free>).add(host='127.0.0.1', port=EXECUTOR_PORT, external=True)` (Jina's own
gateway, which probes the Executor with reflection and endpoint discovery), posts through it with
a stock Client and prints `INTEROP <json>` lines for the Rust test to check. The flotilla
Executor is `Echo`: docs come back as they were sent.
"""

import json
import os
import socket
import sys
import traceback

os.environ.setdefault('JINA_LOG_LEVEL', 'ERROR')

from typing import Any, Dict, Optional  # noqa: E402

import numpy as np  # noqa: E402
from docarray import BaseDoc, DocList  # noqa: E402
from docarray.documents import TextDoc  # noqa: E402
from docarray.typing import NdArray  # noqa: E402
from jina import Client, Flow  # noqa: E402

HOST = '127.0.0.1'


class TaggedDoc(BaseDoc):
    text: str = ''
    tags: Dict[str, Any] = {}
    embedding: Optional[NdArray] = None


def emit(scenario, **fields):
    print('INTEROP ' + json.dumps({'scenario': scenario, **fields}, default=str), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def main():
    exec_port = int(sys.argv[1])
    gateway_port = free_port()
    flow = Flow(port=gateway_port, protocol='grpc', timeout_ready=120_000).add(
        name='flotilla', host=HOST, port=exec_port, external=True
    )
    with flow:
        c = Client(host=HOST, port=gateway_port, protocol='grpc')
        try:
            emit('jina_flow_ready', ready=c.is_flow_ready())
        except Exception:
            emit('jina_flow_ready', error=traceback.format_exc())
        try:
            docs = DocList[TextDoc](
                [
                    TextDoc(id=f'x{i}', text=f'text {i}', embedding=np.full(128, i, dtype=np.float32))
                    for i in range(20)
                ]
            )
            out = c.post(
                '/index', docs, request_size=5, results_in_order=True, return_type=DocList[TextDoc]
            )
            emit(
                'jina_flow_textdocs',
                docs=[
                    {
                        'class': type(d).__name__,
                        'id': d.id,
                        'text': d.text,
                        'shape': list(np.asarray(d.embedding).shape),
                        'embedding_first_last': [
                            float(np.asarray(d.embedding)[0]),
                            float(np.asarray(d.embedding)[-1]),
                        ],
                    }
                    for d in out
                ],
            )
        except Exception:
            emit('jina_flow_textdocs', error=traceback.format_exc())
        try:
            tagged = DocList[TaggedDoc](
                [
                    TaggedDoc(
                        id=f'g{i}',
                        text=f'tagged {i}',
                        tags={'i': i, 'name': f'n{i}', 'l': [1, 'x']},
                        embedding=np.arange(4, dtype=np.float32) + i,
                    )
                    for i in range(3)
                ]
            )
            out = c.post('/search', tagged, parameters={'p': 'x'})
            emit(
                'jina_flow_tagged',
                docs=[
                    {
                        'id': d.id,
                        'text': d.text,
                        'tags': d.tags,
                        'embedding': np.asarray(d.embedding).astype(float).tolist(),
                    }
                    for d in out
                ],
            )
        except Exception:
            emit('jina_flow_tagged', error=traceback.format_exc())


if __name__ == '__main__':
    main()

"""A stock Jina client against a flotilla gateway (driven by tests/interop.rs).

Usage: client.py PORT SCENARIO [SCENARIO ...]

Each scenario prints one line `INTEROP <json>` with what the client got back; the Rust test
asserts on it. A scenario that raises prints `INTEROP {"scenario": ..., "error": <traceback>}`.
The Flow on the other side is the one tests/interop.rs builds: `upper` (uppercases text, tags
docs with `upper`, `batch` = docs in the request and `param`/`k` from the parameters), `picky`
(only `/fail`: fails with ValueError('bad doc')), `scorer` (doubles 128-d embeddings, tags
`emb_sum`, adds two scored matches; `/stats` returns a result object instead).
"""

import json
import os
import sys
import traceback

os.environ.setdefault('JINA_LOG_LEVEL', 'ERROR')

from typing import Any, Dict, Optional  # noqa: E402

import numpy as np  # noqa: E402
from docarray import BaseDoc, DocList  # noqa: E402
from docarray.documents import TextDoc  # noqa: E402
from docarray.typing import NdArray  # noqa: E402
from jina import Client  # noqa: E402
from jina.excepts import BadServer  # noqa: E402

HOST = '127.0.0.1'


class InDoc(BaseDoc):
    text: str = ''
    tags: Dict[str, Any] = {}
    embedding: Optional[NdArray[128]] = None


class OutDoc(BaseDoc):
    text: str = ''
    tags: Dict[str, Any] = {}
    embedding: Optional[NdArray[128]] = None
    matches: DocList[TextDoc] = DocList[TextDoc]()


def emit(scenario, **fields):
    print('INTEROP ' + json.dumps({'scenario': scenario, **fields}, default=str), flush=True)


def in_docs(n, prefix='d'):
    return DocList[InDoc](
        [
            InDoc(
                id=f'{prefix}{i}',
                text=f'hello {i}',
                tags={'i': i, 'src': 'py', 'nested': {'l': [1, 'x', True]}},
                embedding=np.arange(128, dtype=np.float32) * 0.5 + i,
            )
            for i in range(n)
        ]
    )


def score_of(s):
    return float(getattr(s, 'value', s))


def describe(d):
    emb = getattr(d, 'embedding', None)
    matches = getattr(d, 'matches', None) or []
    return {
        'class': type(d).__name__,
        'id': d.id,
        'text': getattr(d, 'text', None),
        'tags': getattr(d, 'tags', None),
        'embedding_class': None if emb is None else type(emb).__name__,
        'shape': None if emb is None else list(np.asarray(emb).shape),
        'dtype': None if emb is None else str(np.asarray(emb).dtype),
        'embedding': None if emb is None else np.asarray(emb).astype(float).tolist(),
        'matches': [
            {
                'class': type(m).__name__,
                'id': m.id,
                'text': getattr(m, 'text', None),
                'scores': {
                    k: score_of(v) for k, v in (getattr(m, 'scores', None) or {}).items()
                },
            }
            for m in matches
        ],
    }


def ready(c):
    emit('ready', ready=c.is_flow_ready())


def roundtrip(c):
    docs = in_docs(5)
    out = c.post('/index', docs, parameters={'tag_value': 'rt'})
    typed = c.post('/index', docs, return_type=DocList[OutDoc])
    emit(
        'roundtrip',
        docs=[describe(d) for d in out],
        typed=[describe(d) for d in typed],
        typed_list=type(typed).__name__,
    )


def return_type(c):
    docs = DocList[TextDoc](
        [TextDoc(id=f't{i}', text=f'abc {i}', embedding=np.full(128, i, dtype=np.float32)) for i in range(3)]
    )
    out = c.post('/index', docs, return_type=DocList[TextDoc])
    emit(
        'return_type',
        list_doc_type=out.doc_type.__name__,
        docs=[describe(d) for d in out],
    )


def batching(c):
    docs = in_docs(250, prefix='b')
    out = c.post('/index', docs, request_size=10, results_in_order=True)
    unary = c.post('/index', in_docs(60, prefix='u'), request_size=25, stream=False)
    emit(
        'batching',
        ids=[d.id for d in out],
        batches=sorted({d.tags['batch'] for d in out}),
        texts_upper=all(d.text == d.text.upper() for d in out),
        unary_ids=[d.id for d in unary],
        unary_batches=sorted({d.tags['batch'] for d in unary}),
    )


def parameters(c):
    out = c.post('/index', in_docs(2, prefix='p'), parameters={'tag_value': 'from python', 'k': 3})
    responses = c.post(
        '/stats', in_docs(3, prefix='s'), parameters={'k': 1}, return_responses=True
    )
    emit(
        'parameters',
        tags=[d.tags for d in out],
        responses=[
            {'parameters': r.parameters, 'ids': [d.id for d in r.docs]} for r in responses
        ],
    )


def error(c):
    fields = {'raised': None}
    try:
        c.post('/fail', in_docs(2, prefix='e'))
    except BadServer as e:
        header = e.args[0]
        status = header.status
        fields = {
            'raised': type(e).__name__,
            'code': int(status.code),
            'is_error': status.code == status.ERROR,
            'name': status.exception.name,
            'args': list(status.exception.args),
            'executor': status.exception.executor,
            'description': status.description,
            'request_id': header.request_id,
        }
    except Exception as e:  # the wrong kind of failure is a result too
        fields = {'raised': type(e).__name__, 'message': str(e)}
    # continue_on_error: the failed response is the request, docs included (Jina's error model).
    kept = c.post('/fail', in_docs(2, prefix='k'), continue_on_error=True)
    after = c.post('/index', in_docs(3, prefix='a'))
    emit(
        'error',
        after=[d.text for d in after],
        kept=[{'id': d.id, 'text': d.text, 'tags': sorted(d.tags)} for d in kept],
        **fields,
    )


def targeted(c):
    def seen(docs):
        return [{'text': d.text, 'tags': sorted(d.tags)} for d in docs]

    emit(
        'targeted',
        upper_only=seen(c.post('/index', in_docs(2, prefix='t'), target_executor='upp')),
        scorer_only=seen(c.post('/index', in_docs(2, prefix='s'), target_executor='scorer')),
        specific=[
            d.tags
            for d in c.post(
                '/index', in_docs(2, prefix='q'), parameters={'upper__tag_value': 'only upper', 'k': 2}
            )
        ],
    )


SCENARIOS = {
    f.__name__: f for f in [ready, roundtrip, return_type, batching, parameters, error, targeted]
}


def main():
    port = int(sys.argv[1])
    # FLOTILLA_TLS=1: over TLS to a gateway whose certificate names localhost; gRPC reads the
    # trusted CA from GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (set by the test).
    if os.environ.get('FLOTILLA_TLS') == '1':
        c = Client(host='localhost', port=port, protocol='grpc', tls=True)
    else:
        c = Client(host=HOST, port=port, protocol='grpc')
    for name in sys.argv[2:]:
        try:
            SCENARIOS[name](c)
        except Exception:
            emit(name, error=traceback.format_exc())


if __name__ == '__main__':
    main()

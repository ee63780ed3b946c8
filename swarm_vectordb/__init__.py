"""Swarm substrate and the distributed vector database over it.

| module / package | owns                                                                  |
|------------------|-----------------------------------------------------------------------|
| `bee`            | Swarm itself: byte-exact primitives, the async Bee client, the dev node |
| `chunking`       | reading text/markdown/PDF documents; token windows with overlap       |
| `embedding`      | embeddings, offline, on a worker thread; picks the runtime            |
| `minilm`         | the bundled all-MiniLM-L6-v2 on numpy (no torch: fast start-up)        |
| `index`          | the local FAISS index with its crash-safe write-ahead log             |
| `lexical`        | BM25 over chunk texts, in memory, grown incrementally; the tokeniser  |
| `ingest`         | documents -> chunks -> Swarm -> embeddings -> index, idempotently      |
| `protocol`       | signed, typed msgpack peer messages and their validation              |
| `peers`          | GSOC inboxes, peer records on feeds, the peer directory               |
| `routing`        | index summaries, peer selection, verified merging of answers          |
| `network`        | distributed search (asking) and the serving peer                      |
| `asks`           | agent-to-agent asks: sending an `Ask`, waiting for the signed `Reply`  |
| `peertext`       | peer text made safe to print (escape and control sequences removed)    |
| `errors`         | the vector database's error tree (`VectorDBError`)                    |

Depends on nothing of ours.
"""

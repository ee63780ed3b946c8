"""Swarm substrate and the distributed vector database over it.

| module / package | owns                                                                  |
|------------------|-----------------------------------------------------------------------|
| `bee`            | Swarm itself: byte-exact primitives, the async Bee client, the dev node |
| `chunking`       | reading text/markdown/PDF documents; token windows with overlap       |
| `embedding`      | sentence-transformers embeddings, offline, on a worker thread         |
| `index`          | the local FAISS index with its crash-safe write-ahead log             |
| `ingest`         | documents -> chunks -> Swarm -> embeddings -> index, idempotently      |
| `protocol`       | signed, typed msgpack peer messages and their validation              |
| `peers`          | GSOC inboxes, peer records on feeds, the peer directory               |
| `routing`        | index summaries, peer selection, verified merging of answers          |
| `network`        | distributed search (asking) and the serving peer                      |
| `errors`         | the vector database's error tree (`VectorDBError`)                    |

Depends on nothing of ours.
"""

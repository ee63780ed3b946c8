"""Swarm substrate and the distributed vector database over it.

| module / package | owns                                                                  |
|------------------|-----------------------------------------------------------------------|
| `bee`            | Swarm's byte formats: BMT chunks, chunk trees, SOCs, feeds, GSOC, PSS |
| `chunking`       | reading text/markdown/PDF documents; token windows with overlap       |
| `embedding`      | sentence-transformers embeddings, offline, on a worker thread         |
| `index`          | the local FAISS index with its crash-safe write-ahead log             |
| `protocol`       | signed, typed msgpack peer messages and their validation              |
| `routing`        | index summaries, peer selection, verified merging of answers          |
| `errors`         | the vector database's error tree (`VectorDBError`)                    |

Ingestion, the peer directory, network search and the serving peer arrive with
their issue. Depends on nothing of ours.
"""

"""Swarm substrate and the distributed vector database over it.

| subpackage | owns                                                                  |
|------------|-----------------------------------------------------------------------|
| `bee`      | Swarm's byte formats: BMT chunks, chunk trees, SOCs, feeds, GSOC, PSS |

The async Bee client, the embedded dev node and the vector database arrive with
their issues. Depends on nothing of ours.
"""

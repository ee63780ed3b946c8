"""Verifiable LoRA training: deterministic steps, step logs, Merkle commitments.

Empty until the training issue lands. Depends on `chain` and `swarm_vectordb.bee`.
"""

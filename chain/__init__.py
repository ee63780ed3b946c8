"""Ethereum: contracts, compiled artifacts, async web3 client, deploy, dev chains.

Empty until the chain issue lands. Depends on nothing of ours.
"""

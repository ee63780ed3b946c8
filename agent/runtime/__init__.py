"""The parts `agent.node.Node` is built from; the node owns their lifetimes.

- `wiring`: `Wiring`, the components of one node, each opened once on first use
  and closed together (the base of `Node`);
- `components`: Swarm access (a Bee node or the embedded dev node, with a usable
  postage batch), the knowledge base (embedder, FAISS index, chunker) and the chain
  client;
- `errors`: `translated`, the packages' errors as `ServiceError` naming what failed;
- `peering`: this node's inbox and peer record, known peers (config and the on-chain
  registry), signed queries to them, registration on chain;
- `search`: a search's report, local and network hits merged;
- `serving`: answering peers (queries and agent-to-agent asks) and publishing the
  peer record.

Nothing here imports `agent.node`; import the submodules directly.
"""

"""Tool plugins the agent can call: protocol, registry and built-in tools.

Empty until the agent issue lands (calculator, python sandbox, chain, knowledge,
ask-peer). Depends on `chain` and `swarm_vectordb`, never on `agent`.
"""

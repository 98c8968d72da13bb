"""FunSearch for online bin packing (Romera-Paredes et al., Nature 2023) in jdl.

Modules: data (datasets), evaluate (NumPy reference evaluator), jax_eval (lax.scan
evaluator), heuristics (baselines and published heuristics), sandbox (running untrusted
candidates), database (islands of programs), proposers (LLM endpoint and offline AST
mutation), search (the loop), cli (`jdl binpack table|search|bench`), figures, bench.

Kept import-light on purpose: the sandbox's workers, and the candidate processes forked
from them, import this package, so nothing here pulls in JAX.
"""

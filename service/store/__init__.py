"""Redis adapters: the key schema, the Lua scripts and the stores built on them."""

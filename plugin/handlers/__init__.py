"""One thin handler per protocol method: wire model in, domain call, wire model out."""

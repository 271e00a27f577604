"""Load balancers in front of the gateways: the lab balancer's modes, its health monitor,
what a run through it measured, and the vendor configuration that gets it right."""

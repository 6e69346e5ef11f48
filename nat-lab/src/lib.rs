//! Nothing to use here: the NAT lab tests live in `tests/`, the lab itself in `scripts/nat-lab`.

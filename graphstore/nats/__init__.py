"""Tenant streams beyond one machine, over NATS JetStream (docs/scale.md): the relay
that carries each tenant's stream to JetStream, the spokes that publish call events,
the hub's ingester that folds them in. :mod:`graphstore.nats.subjects` is the contract
they share (subjects, the JetStream stream, message ids and headers)."""

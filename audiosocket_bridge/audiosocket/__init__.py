"""The AudioSocket side: the wire codec, one call's state, the session around a connection and
the TCP server that accepts them."""

"""wasim's wire protocol, sans-I/O: binary nodes, Noise handshake, certificates, pairing."""

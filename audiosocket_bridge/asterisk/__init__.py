"""The Asterisk side beyond AudioSocket: AMI (captions and channel variables out, registrations
in) and FastAGI (options in before AudioSocket(), the transcript out after it)."""

"""Peers and speech for testing a bridge, shared by the test suite and the benchmarks.

``audiosocket_client`` behaves as Asterisk's AudioSocket (app_audiosocket / chan_audiosocket);
``fake_ami`` and ``recording_ami`` as Asterisk's manager interface; ``prompts``, ``voices`` and
``nonspeech`` give real speech and non-speech from Debian's Asterisk sound packages and espeak-ng;
``fake_decoder`` is the streaming scheduler's decoder without a model, on a hand-driven clock;
``ports`` finds free loopback ports. Nothing here is imported by the bridge itself.
"""

"""The smaller ``mynacard`` commands: demo, the JPKI summary, the test PKI, the fidelity
document and traces. The main parser is :mod:`harness.cli`."""

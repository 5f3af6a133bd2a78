"""The card side: how an emulated card gets into a reader (vpcd, vicc, pcscd, netns)."""

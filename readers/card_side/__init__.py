"""The card side: how an emulated card gets into a reader.

vpcd client (:mod:`~readers.card_side.vpcd`, frames in :mod:`~readers.card_side.vpcd_frames`),
vicc adapter (:mod:`~readers.card_side.vicc`), the virtual-card protocol
(:mod:`~readers.card_side.virtual_card`), network namespaces (:mod:`~readers.card_side.netns`)
and the pcscd manager: a private pcscd (:mod:`~readers.card_side.pcscd`, its process in
:mod:`~readers.card_side.pcscd_process`, its sockets in :mod:`~readers.card_side.sockets`, its
reader configuration in :mod:`~readers.card_side.reader_conf`) or the running one
(:mod:`~readers.card_side.running_pcscd`). Nothing here imports the host side or the chip.
"""

"""The host side: how a program talks to a card, real or emulated, through any transport.

Transports (:mod:`~readers.host_side.transport`, :mod:`~readers.host_side.pcsc`), the protocol
layer (:mod:`~readers.host_side.protocol`: APDU exchange, SELECT, VERIFY, chained READ BINARY,
card errors) and one session module per application on equal footing:
:mod:`~readers.host_side.jpki`, :mod:`~readers.host_side.text_ap` (with
:mod:`~readers.host_side.secure_messaging`), :mod:`~readers.host_side.kenmen_ap` and
:mod:`~readers.host_side.common` (共通AP, 住基AP). :class:`~readers.host_side.client.MynaClient`
gathers them behind one object.
"""

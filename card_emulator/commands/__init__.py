"""Command handlers, one module per command family. Each is ``handler(ctx, cmd) -> bytes``.

A handler sees the card only through its
:class:`~card_emulator.command_context.CommandContext` and changes the security state only through
the state's methods."""

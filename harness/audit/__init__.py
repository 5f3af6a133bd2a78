"""The access-rule audit: the rules and credentials to check (:mod:`.rules`), the commands that
probe a card (:mod:`.probe`), the run (:mod:`.engine`) and its report (:mod:`.report`)."""

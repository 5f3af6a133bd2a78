"""A card's behavioural profile (issue 17): the commands it may send (:mod:`.plan`), the run that
reduces answers to status words, structure and sizes (:mod:`.runner`), certificate profiles
(:mod:`.certificates`), the JSON file (:mod:`.profile`), comparisons (:mod:`.diff`), persona
fragments (:mod:`.adopt`) and ``mynacard fingerprint`` (:mod:`.cli`)."""

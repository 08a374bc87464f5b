"""The deep-learning operations (SPEC §4), each a decomposition into
primitives, so their derivatives of every order come from the primitives'
rules: activations (``activations``), losses and one-hot encoding
(``losses``), ``fullyconnect``, normalisations (``norm``), ``dropout``,
``embed``, pooling (``pool``), ``dlconv`` (``conv``), with the spatial
arguments they share (``spatial``) and argument checks (``args``)."""

//! The `Mnemo` class: the memory engine for JS.

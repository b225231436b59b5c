//! The episodic store: episodes, validation, the backend trait, the in-memory and IndexedDB backends, export/import.

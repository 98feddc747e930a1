"""Developer tooling: find or start the services the platform needs on this machine."""

"""Model architectures for the build step (torch allowed here, never in edge/)."""

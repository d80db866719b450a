"""The local stack: fetches and runs every server of the platform as a loopback process."""

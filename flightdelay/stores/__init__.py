"""One module per store of the platform: how it is read and written."""

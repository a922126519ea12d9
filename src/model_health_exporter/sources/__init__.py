"""Reading the outside world: directory listings, file contents, file-system events.
Nothing here computes or interprets values."""

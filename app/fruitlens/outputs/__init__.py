"""What the commands leave behind: the names under --output (names), the one commit protocol
every writer goes through (commit.OutputCommit), the run manifest (report) and the object
store beneath them all (storage.Storage: local folders or S3, with SSE)."""

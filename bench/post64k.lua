-- wrk script for the 64 KiB POST echo cell: every request POSTs the same 64 KiB body.
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"

-- wrk script: every request is a POST with a 100 KiB body (Content-Length framed).
wrk.method = "POST"
wrk.body = string.rep("x", 100 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"

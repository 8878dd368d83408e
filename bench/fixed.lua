-- wrk script for the ceiling server: the same POST shape as messages.lua, fixed body.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"bench-00001","text":"office timings"}'

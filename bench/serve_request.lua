-- wrk script of the serve benchmark (bench/serve.py): POST one single-row JSON body per request, taking the
-- bodies in turn from the file named after `--` (one body a line: rows of the test split), so the model sees
-- real, varied rows. Each request is formatted once, in init, so the client does almost no work per request.
local requests = {}
local n = 0

function init(args)
   for line in io.lines(args[1]) do
      requests[#requests + 1] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
   end
end

function request()
   n = n % #requests + 1
   return requests[n]
end

-- wrk: each request goes to a host picked at random from the file named by BENCH_HOSTS.
local hosts = {}
for line in io.lines(os.getenv("BENCH_HOSTS")) do hosts[#hosts + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", wrk.path, { ["Host"] = hosts[math.random(#hosts)] })
end

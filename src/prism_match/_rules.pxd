# The failed-rule bits the kernel sets, one per row of rules.RULES (same bits;
# tests/test_rules.py holds the two together).
cdef enum:
    RULE_MISSING_INTERFACE = 1 << 0
    RULE_MISSING_CAPABILITY = 1 << 1
    RULE_WRITE_CAPACITY = 1 << 2
    RULE_READ_CAPACITY = 1 << 3
    RULE_LATENCY = 1 << 4
    RULE_HEALTH = 1 << 5
    RULE_REGION = 1 << 6
    RULE_COMPLIANCE = 1 << 7
    RULE_BACKEND_TYPE = 1 << 8
    RULE_STORAGE = 1 << 9
    RULE_CONSISTENCY = 1 << 10
    RULE_NAMESPACES = 1 << 11
    RULE_CONNECTIONS = 1 << 12
    RULE_GROUP_BACKEND = 1 << 13
    RULE_GROUP_REGION = 1 << 14
    RULE_GROUP_SKEW = 1 << 15
    RULE_LATENCY_PERCENTILE = 1 << 16
    RULE_BATCH = 1 << 17
    RULE_CONCURRENCY = 1 << 18
    RULE_CAPABILITY_THROUGHPUT = 1 << 19
    N_RULES = 20

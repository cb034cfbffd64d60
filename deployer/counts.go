package deployer

// Increase is the traffic between two readings of a host's cumulative
// counters, prev and then c, read the way Prometheus' increase() reads a
// counter: their difference, or all of c when either counter went down
// (the process restarted, so its counters started again from zero).
func (c Counts) Increase(prev Counts) (requests, errors float64) {
	if c.Requests < prev.Requests || c.Errors < prev.Errors {
		return c.Requests, c.Errors
	}
	return c.Requests - prev.Requests, c.Errors - prev.Errors
}

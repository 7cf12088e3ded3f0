package cli

// TCPPolicies are the values of --tcp (procs-dump, procs-load, procs send
// and receive): whether established connections travel (in repair mode,
// as root) or come back reset.
var TCPPolicies = map[string]bool{"established": false, "close": true}

// TCPClose reads a --tcp value: true for close.
func TCPClose(v string) (bool, error) {
	c, ok := TCPPolicies[v]
	if !ok {
		return false, Usagef("invalid value %q for --tcp: want established or close", v)
	}
	return c, nil
}

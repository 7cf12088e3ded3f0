package servecmd

import "procs/pkg/server/servertest"

// standinVerify accepts the stand-in images of package servertest.
// TODO(merge): delete when Verify is format.Verify.
var standinVerify = servertest.Verify

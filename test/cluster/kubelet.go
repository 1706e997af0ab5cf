package main

// The node side of the test plane: a real kubelet (the upstream cmd/kubelet/app at the same version as the
// control plane) and a fake CRI runtime for it to talk to, so tests can run the kubelet nodecred feeds
// without containerd. The fake runtime is upstream's own test double (k8s.io/cri-client/pkg/fake); it runs
// no containers, which is all a kubelet needs to register its Node, renew its Lease and serve port 10250.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/client-go/transport"
	"k8s.io/cri-client/pkg/fake"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// clientCertReloadEnv shortens client-go's re-read of the kubeconfig's client certificate files (5 minutes,
// transport.CertCallbackRefreshDuration, which upstream exposes "so that integration tests can crank up the
// reload speed"). Only tests that watch a client rotation reach the kubelet set it; unset, the kubelet
// behaves exactly as released.
const clientCertReloadEnv = "NODECRED_TEST_CLIENT_CERT_RELOAD"

func runKubelet(args []string) int {
	if v := os.Getenv(clientCertReloadEnv); v != "" {
		period, err := time.ParseDuration(v)
		if err != nil || period <= 0 {
			fmt.Fprintf(os.Stderr, "kubelet: %s=%q is not a positive duration\n", clientCertReloadEnv, v)
			return 2
		}
		transport.CertCallbackRefreshDuration = period
	}
	return runCobra(kubelet.NewKubeletCommand(context.Background()), args)
}

// runFakeCRI serves upstream's fake CRI runtime and image services on --endpoint until SIGTERM/SIGINT.
func runFakeCRI(args []string) int {
	flags := flag.NewFlagSet("fake-cri", flag.ContinueOnError)
	endpoint := flags.String("endpoint", "", "CRI endpoint to listen on, e.g. unix:///run/fake-cri.sock")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *endpoint == "" {
		fmt.Fprintln(os.Stderr, "fake-cri: --endpoint is required (e.g. unix:///tmp/node/cri.sock)")
		return 2
	}
	runtime := fake.NewFakeRemoteRuntime()
	// The kubelet's image garbage collector refuses an image filesystem whose images report size 0.
	runtime.ImageService.SetFakeImageSize(1 << 20)
	if err := runtime.Start(*endpoint); err != nil {
		fmt.Fprintln(os.Stderr, "fake-cri:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "fake-cri: serving on", *endpoint)
	// Under systemd (Type=notify) the kubelet, ordered after this unit, starts once the socket listens.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		fmt.Fprintln(os.Stderr, "fake-cri: sd_notify:", err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	runtime.Stop()
	return 0
}

// Command cluster is one multicall binary holding the upstream control-plane components nodecred's tests,
// benchmarks and demo run against: etcd, etcdctl, kube-apiserver, kube-controller-manager and kubectl, plus
// csr-inspect, the approver's crypto/x509 oracle, and the node side: a kubelet and a fake CRI runtime for it
// (kubelet.go).
//
// One binary instead of five keeps the cold build to one link of the shared dependency graph. The
// component is chosen by the name the binary is called under (a symlink), or by the first argument:
//
//	cluster kube-apiserver --etcd-servers=...
//	ln -s cluster etcd && ./etcd --data-dir=...
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/etcdctl/v3/ctlv3"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"

	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

var components = map[string]func(args []string) int{
	"csr-inspect": runCSRInspect, // the Go oracle for the approver (csrinspect.go)
	"etcd": func(args []string) int {
		etcdmain.Main(append([]string{"etcd"}, args...))
		return 0
	},
	"etcdctl": func(args []string) int {
		os.Args = append([]string{"etcdctl"}, args...)
		if err := ctlv3.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			return 1
		}
		return 0
	},
	"kube-apiserver": func(args []string) int {
		return runCobra(apiserver.NewAPIServerCommand(), args)
	},
	"kube-controller-manager": func(args []string) int {
		return runCobra(controllermanager.NewControllerManagerCommand(), args)
	},
	"kubelet":  runKubelet,
	"fake-cri": runFakeCRI,
	"kubectl": func(args []string) int {
		// kubectl reads os.Args itself (plugins, verbosity), so it gets its own name back in argv[0].
		os.Args = append([]string{"kubectl"}, args...)
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
		command := kubectlcmd.NewDefaultKubectlCommand()
		if err := cli.RunNoErrOutput(command); err != nil {
			kubectlutil.CheckErr(err)
		}
		return 0
	},
}

func runCobra(command *cobra.Command, args []string) int {
	command.SetArgs(args)
	return cli.Run(command)
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if _, ok := components[name]; !ok && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	run, ok := components[name]
	if !ok {
		names := make([]string, 0, len(components))
		for n := range components {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: %s <component> [flags]\ncomponents: %v\n", filepath.Base(os.Args[0]), names)
		os.Exit(2)
	}
	os.Exit(run(args))
}

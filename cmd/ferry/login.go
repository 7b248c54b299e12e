package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-oci/ferry/bundle/registry"
)

func newLoginCmd(g *globals) *cobra.Command {
	var (
		user, password string
		stdin          bool
		opts           registry.Options
	)
	cmd := &cobra.Command{
		Use:   "login REGISTRY -u USER (--password-stdin | -p PASSWORD)",
		Short: "Check credentials against a registry and save them for docker, podman, skopeo and ferry",
		Long: `Check a user name and password against a registry and save them in the file
docker, podman and skopeo read: $REGISTRY_AUTH_FILE if set, else docker's
config.json (or --authfile).

Harbor robot accounts have a '$' in their name (robot$mirror+ci): in a shell,
put the name in single quotes, or the shell replaces $mirror with nothing.`,
		Example: `  printf '%s' "$TOKEN" | ferry login harbor.internal -u 'robot$mirror+ci' --password-stdin
  ferry login registry.local:5000 -u admin -p secret --plain-http`,
		Args: exactArgs(1, "REGISTRY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if stdin {
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return usagef("--password-stdin: nothing on standard input")
				}
				password = strings.TrimRight(line, "\r\n")
			}
			if user == "" || password == "" {
				return usagef("login needs -u USER and a password (--password-stdin, or -p)")
			}
			if err := registry.Login(cmd.Context(), args[0], user, password, opts); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Login Succeeded: %s as %s\n", args[0], user)
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (visible to other users of this machine: prefer --password-stdin)")
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	connectionFlags(cmd, "", "the registry", &opts)
	return cmd
}

func newLogoutCmd(g *globals) *cobra.Command {
	var opts registry.Options
	cmd := &cobra.Command{
		Use:     "logout REGISTRY",
		Short:   "Forget the credentials saved for a registry",
		Example: `  ferry logout harbor.internal`,
		Args:    exactArgs(1, "REGISTRY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := registry.Logout(cmd.Context(), args[0], opts); err != nil {
				return err
			}
			fmt.Fprintf(g.out, "Removed the credentials for %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.AuthFile, "authfile", "", "credentials file (default: $REGISTRY_AUTH_FILE, else docker's config.json)")
	return cmd
}

"""`cifar-hf demo --model RUN_FOLDER_OR_HUB_ID [--port P] [--host 127.0.0.1] [--share]`: try a model in a browser.

`cifar-hf demo --model HUB_ID --write-space DIR [--push_to_hub [--hub-space-id OWNER/NAME]]` writes (and uploads)
a Gradio Space serving the pushed model instead.
"""

import signal
import socket
import sys
from pathlib import Path

from ..errors import CifarError, CommandParser, InputError, first_line, print_error
from ..serving.space import default_space_id, push_space, write_space


def parse(argv):
    parser = CommandParser(prog="cifar-hf demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder or Hub id (for --write-space: the Hub id)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port of the local page")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom code from a Hub repository")
    parser.add_argument("--write-space", metavar="DIR", help="write a Space folder serving --model instead")
    parser.add_argument("--push_to_hub", "--push-to-hub", action="store_true", help="upload the Space folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --write-space: replace files of the same names with other contents")
    parser.add_argument("--hub-space-id", "--hub_space_id", help="Space to create (default: MODEL_ID-demo)")
    parser.add_argument("--hub_private_repo", "--hub-private-repo", type=lambda v: v.lower() in {"1", "true", "yes"},
                        default=None, help="make the Space private (true/false)")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error(f"--top-k must be at least 1 (got {args.top_k})")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535 (got {args.port})")
    if (args.push_to_hub or args.hub_space_id or args.overwrite) and not args.write_space:
        parser.error("--push_to_hub, --hub-space-id and --overwrite go with --write-space DIR")
    if args.write_space and Path(args.model).expanduser().exists():
        parser.error(f"--write-space serves a pushed model: --model takes its Hub id, not the folder {args.model} "
                     "(push it with run_classification.py --push_to_hub first)")
    return args


def space(args) -> int:
    from ..hub import push_or_raise
    from ..offline import hub_out_of_reach

    if args.push_to_hub and hub_out_of_reach():  # refused before anything is written, not after the client's retries
        raise InputError("--push_to_hub: the Hugging Face Hub is out of reach (offline, or HF_HUB_OFFLINE is set); "
                         "write the folder without --push_to_hub and upload it later")
    folder = Path(args.write_space)
    files = write_space(folder, args.model, args.top_k, args.overwrite)
    print(f"wrote {', '.join(str(f) for f in files)}")
    if args.push_to_hub:
        space_id = args.hub_space_id or default_space_id(args.model)
        url = push_or_raise(lambda: push_space(folder, space_id, args.hub_private_repo),
                            f"pushing the Space to {space_id} failed", f" (the folder {folder} is written)")
        print(f"pushed the Space to {space_id}: {url}")
    return 0


def check_host(host: str, port: int) -> None:
    """A host name that does not resolve is said so (Gradio reports it as 'Cannot find empty port')."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else first_line(error)
        raise InputError(f"--host {host} cannot be resolved ({reason}): give an address such as 127.0.0.1 or "
                         "0.0.0.0") from None


def serve(args) -> int:
    from ..serving.demo_app import build_demo

    check_host(args.host, args.port)  # before loading the model
    demo = build_demo(args.model, args.top_k, args.trust_remote_code)
    # SIGTERM (kill, docker stop, systemd) and SIGHUP (the terminal closed) stop the server as Ctrl-C does, so
    # atexit still removes the examples
    stops = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {number: signal.signal(number, signal.default_int_handler) for number in stops
                if signal.getsignal(number) is not signal.SIG_IGN}  # nohup's "ignore" stays ignored
    try:
        # quiet: Gradio's own lines would tell a command-line user to set `share=True` in `launch()`
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True,
                    prevent_thread_lock=True)
        print(f"* Running on local URL:  {demo.local_url}", flush=True)
        if not args.share:
            print("* For a public link, run it with --share", flush=True)
        demo.block_thread()  # until Ctrl-C or SIGTERM
    except KeyboardInterrupt:  # one that came before block_thread listened for it
        demo.close()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        return space(args) if args.write_space else serve(args)
    except CifarError as error:
        return print_error(error)
    except OSError as error:  # a port in use or a folder that cannot be written
        if "Cannot find empty port" in str(error):  # Gradio's hint names launch() and an environment variable
            print(f"error: --port {args.port} is in use on {args.host}: pass another --port", file=sys.stderr)
        else:
            print(f"error: {first_line(error)}", file=sys.stderr)
        return 1

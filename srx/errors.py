"""The one domain exception srx raises for anything a user can fix."""


class SrxError(Exception):
    """A problem with user input or the environment; the CLI prints it and exits 1."""


class OutOfMemory(SrxError):
    """An allocation failed (numpy's MemoryError, OpenCV's "Insufficient memory", ONNX Runtime's
    arena, srx.memory.is_out_of_memory): what was being done, what it needs and what helps.
    `subject` is what the message names ("a 3840x2160 image"); `naming(name)` says it of a file.
    `in_model`: the model's own call failed (its activations), not the whole-frame planes."""

    def __init__(self, message: str, *, subject: str = "", in_model: bool = False) -> None:
        super().__init__(message)
        self.subject, self.in_model = subject, in_model

    def naming(self, name: str) -> "OutOfMemory":
        """The same error, naming `name` (a file) where it named what it was upscaling."""
        text = str(self)
        text = text.replace(self.subject, name, 1) if self.subject and self.subject in text else f"{name}: {text}"
        return OutOfMemory(text, subject=name, in_model=self.in_model)


def bind_failure(exc: OSError, host: str, port_option: str, host_option: str) -> str:
    """Why a server could not bind host:port, and which option changes it: the port, or the address
    (one option for both, such as --serve HOST:PORT, is named once)."""
    if exc.errno in (98, 48, 10048):  # EADDRINUSE (Linux, macOS, Windows)
        return f"the port is already in use (another srx or server is on it); pick another port with {port_option}"
    if exc.errno in (99, 49, 10049):  # EADDRNOTAVAIL
        return (f"{host} is not an address of this machine; pick one of its own (0.0.0.0 for all of them, "
                f"127.0.0.1 for this machine only) with {host_option}")
    options = host_option if host_option == port_option else f"{host_option} or {port_option}"
    return f"{exc.strerror or exc}; pick another address or port with {options}"

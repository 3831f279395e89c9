"""The repository's root conftest. zerodrop's pytest plugin is not registered here: it comes
from the ``pytest11`` entry point of the installed package (``./zd`` installs this checkout in
editable mode), exactly as in any other repository that installs zerodrop."""

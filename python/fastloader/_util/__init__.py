"""Small shared helpers with no fastloader imports of their own: torch-style argument checks
(`checks`), the native thread count (`threads`), the recycling buffer pool (`pool`), whether a
process is still there (`processes`) and tables as text or markdown (`tables`). Every other
subpackage may import from here; `_util` imports nothing from fastloader but the compiled `_C`
module."""

"""4-bit mixture-of-experts weights (Mixtral): the experts are most of the model and must be quantized too.

transformers 5 stores a sparse-MoE layer's experts as fused 3-D parameters (`MixtralExperts.gate_up_proj`,
`down_proj`: one slice per expert), not as `nn.Linear` modules, and its bitsandbytes integration only
replaces `nn.Linear`s. Loaded with `load_in_4bit`, Mixtral-8x7B would keep ~45 of its 47 billion
parameters in bf16 (~87 GB). bitsandbytes' `replace_parameter_4bit` stores such a parameter as NF4 and
dequantizes it when the layer runs (once per forward pass: the parametrization cache is on during it).
"""

from __future__ import annotations

import logging
from typing import Any

from ragsite.logs import log_event

logger = logging.getLogger(__name__)


def experts_quantize(model: Any, *, double_quant: bool) -> int:
    """Quantize the fused expert parameters of every `*Experts` module to NF4 in place; return how many.

    Only modules named like transformers' expert containers are touched: other 3-D parameters (a conv's
    kernel) are small and sensitive. Loading still materialises the experts in the compute dtype first,
    so the GPU needs room for the unquantized experts of the model while it loads (see README).
    """
    from bitsandbytes.nn.parametrize import replace_parameter_4bit

    count = 0
    for module in list(model.modules()):
        if not type(module).__name__.endswith("Experts"):
            continue
        for name, param in list(module.named_parameters(recurse=False)):
            if param.dim() == 3 and param.is_floating_point():
                replace_parameter_4bit(module, name, compress_statistics=double_quant, quant_type="nf4")
                count += 1
    if count:
        log_event(logger, "experts_quantized", parameters=count, quant_type="nf4", double_quant=double_quant)
    return count

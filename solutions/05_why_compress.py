"""Solutions to notebook 05's exercises."""


def conv_cost(c_in: int, c_out: int, k: int, h_out: int, w_out: int) -> tuple[int, int]:
    params = c_out * (c_in * k * k + 1)  # weights and one bias per output channel
    macs = c_out * h_out * w_out * c_in * k * k  # one MAC per weight per output position
    return params, macs


def int8_energy_uj(params: int, macs: int) -> float:
    pj = macs * (0.2 + 0.1) + params * 640 / 4  # 8-bit multiply + 32-bit add; a quarter of a DRAM word per weight
    return pj / 1e6
